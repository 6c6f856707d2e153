"""Pages for the people who use Pont, in Welsh and English, served from the gateway's public API."""
