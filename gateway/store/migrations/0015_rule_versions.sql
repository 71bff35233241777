-- Loyalty rules versions from central apply from their effective time: each stored
-- version keeps that time, so the gateway rebuilds its rule book on start. Versions of
-- other configuration kinds have none (NULL).
ALTER TABLE config_versions ADD COLUMN effective_at TEXT;
