"""File serving for devices: images, day-0 configs, guestshell files."""
