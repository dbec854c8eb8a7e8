-- What a process must run to take a job (SQLite's 0023): ``requires`` names it
-- (jobs.model_requirement: a rebind's model at the version it is for, as the JSON array
-- [model, version], written without spaces), and a claim passes over a job whose requirement
-- the claiming process does not meet until its deadline has passed. A replica still on the
-- old model version in a rolling upgrade claimed every due rebind to hand it back, a write a
-- job each time. NULL: any process. Rebind jobs still open get their document's model and
-- the version they name.
ALTER TABLE jobs ADD COLUMN requires TEXT;
UPDATE jobs SET requires = (
    SELECT '[' || to_json(d.model)::text || ',' || to_json(jobs.payload::jsonb ->> 'version')::text || ']'
    FROM documents d WHERE d.id = jobs.payload::jsonb ->> 'document')
WHERE kind = 'rebind' AND state IN ('pending', 'running')
    AND jsonb_typeof(jobs.payload::jsonb -> 'version') = 'string';
