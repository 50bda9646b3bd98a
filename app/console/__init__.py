"""The operator console: /dashboard, device pages, actions, inventory import, login."""
