ALTER TABLE reuse_entries ADD COLUMN cost_method TEXT NOT NULL DEFAULT 'estimate';
