"""Who is calling: Cognito ID tokens verified against the user pool's keys."""
