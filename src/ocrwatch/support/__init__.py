"""Shared foundations: safe file operations, retry, the request throttle, logging, extras."""
