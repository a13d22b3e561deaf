"""Audit trail of admin changes (issue 13): who changed what, when, before and after."""
