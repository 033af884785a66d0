"""VK communities (in progress: event parsing; the adapter, sending and the emulator
come next)."""
