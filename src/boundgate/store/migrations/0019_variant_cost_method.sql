-- A creative variant records how its generation's energy was measured (the meter's method),
-- which a request served the variant reports with the energy it avoided (as a stored answer's
-- cost_method, 0006). Variants made before this say 'estimate'.
ALTER TABLE variants ADD COLUMN cost_method TEXT NOT NULL DEFAULT 'estimate';
