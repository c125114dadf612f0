"""The hub: routes documents and statuses between agencies and keeps delivery receipts."""
