"""Switchboard's shared layer: everything the Lambda functions have in common.

Modules are split by what they are about: ``auth`` (JWT verification), ``protocol``
(wire frames), ``router`` (action -> handler), ``gateway`` (API Gateway management API),
``dal`` (DynamoDB repositories), ``config`` (settings from the environment),
``observability`` (Powertools logger/metrics).
"""
