"""Admission: checks on a request's content after it is authorized and
before it is stored (node restriction, quota, limits)."""
