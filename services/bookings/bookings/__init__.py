"""Co-located service bookings: clinics and drop-ins in a room on the school site."""
