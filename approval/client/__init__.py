"""The `greenlight` command-line uploader: a small client of the JSON API.

It imports nothing of the web app: only the standard library, requests, platformdirs and tqdm,
so it keeps working against any Greenlight server that speaks /api/v1.
"""
