"""Repositories: the only code that talks to DynamoDB. One per aggregate, clients injected."""
