-- A creative variant records how its generation's energy was measured (SQLite's 0019): the
-- meter's method, which a request served the variant reports with the energy it avoided.
-- Variants made before this say 'estimate'.
ALTER TABLE variants ADD COLUMN cost_method TEXT NOT NULL DEFAULT 'estimate';
