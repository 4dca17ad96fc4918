-- The console and GET /api/v1/cases find a case by its project id directly (archival codes have
-- their unique index since 0006): one index probe at a million cases.
CREATE INDEX cases_project_id ON cases (project_id);
