"""Relay-side commands: relay setup/run, agency directory, trace/failures/resend."""
