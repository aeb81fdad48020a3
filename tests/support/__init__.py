"""The suite's helpers, in one place: personas' constants, PKI helpers, test clients, real servers and Chromium."""
