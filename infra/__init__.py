"""The CDK app that deploys kms-guard: config read once in app.py, constructs per concern, stacks that compose."""
