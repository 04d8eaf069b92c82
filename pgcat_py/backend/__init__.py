"""The server side: connections to PostgreSQL servers, their login, state and reset."""
