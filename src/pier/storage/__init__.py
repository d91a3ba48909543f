"""Where state lives: metadata in SQL (metadata.py is all the core sees), bytes in blob stores."""
