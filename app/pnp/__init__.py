"""Cisco PnP: protocol (XML), workflow (state machine), service (storage), routes (HTTP)."""
