"""Audit trail of admin changes: who changed what, when, before and after."""
