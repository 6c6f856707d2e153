"""Year 6 transitions: records per pupil, sections on a sharing basis, receipts, CTF."""
