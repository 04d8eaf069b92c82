"""The client side: accepting connections, login and auth, the relay session, cancels."""
