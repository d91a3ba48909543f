"""The AWS JSON 1.1 door (POST /): ECR Public's API, driven by botocore's ecr-public model."""
