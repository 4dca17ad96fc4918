-- Reading a million cases without reading every row (console and GET /api/v1/cases):
-- a case by its project id (archival codes have their unique index since 0006);
CREATE INDEX cases_project_id ON cases (project_id);
-- the case list's order, newest first with the archive id as tie-breaker, from the index alone
-- (archived_at alone left a sort of every row for each page);
CREATE INDEX cases_archived_order ON cases (archived_at, archive_id);
-- a year's filing counts (by status, refused, late; transferred) and its refused cases from
-- covering indexes rather than the wide rows.
CREATE INDEX cases_year_counts ON cases (year, status, filing_problem, filing_late);
CREATE INDEX cases_year_transferred ON cases (year, transferred_in);
-- Cases due for disposal: a range of years per retention term.
CREATE INDEX cases_due ON cases (retention, year, status);
-- A year's refused cases in archive-id order: few, so a partial index (a whole-year index
-- looks unselective to the planner while the year is still pending, and it reads every row).
CREATE INDEX cases_refused ON cases (year, archive_id) WHERE status = 'archived' AND filing_problem IS NOT NULL;
