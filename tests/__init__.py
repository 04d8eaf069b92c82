"""pgcat-py's test suite: unit/, property/, integration/, e2e/, and shared helpers in harness/."""
