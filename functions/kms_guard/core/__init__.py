"""The pure core: no boto3, no environment, no I/O. Everything here is plain data in, plain data out."""
