-- What each stored reply answered: a digest of the request's operation and data, so a
-- reused request id with another operation or other data is told apart from a retry.
-- Replies stored before this have none; their operation is still compared.
ALTER TABLE kiosk_requests ADD COLUMN fingerprint TEXT;
