"""Failed deliveries: returns, the retry schedule, destination health, resend (issue 5)."""
