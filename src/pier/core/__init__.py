"""The domain: accounts, repositories, images, uploads, policies, catalog.

Nothing here knows about HTTP, SQL or AWS SDKs; the doors call in, the stores are passed in.
"""
