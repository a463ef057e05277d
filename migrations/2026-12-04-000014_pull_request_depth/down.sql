DELETE FROM loaded_minutes WHERE final_table IN ('pull_request_commits', 'pull_request_reviews');
DROP TABLE pull_request_work_items;
DROP TABLE pull_request_reviews;
DROP TABLE pull_request_commits;
DROP INDEX idx_work_items_tenant_resolved;
DROP INDEX idx_pull_requests_tenant_merged;
DROP INDEX idx_pull_requests_number;
ALTER TABLE pull_requests
    DROP COLUMN review_time_s,
    DROP COLUMN pickup_time_s,
    DROP COLUMN coding_time_s,
    DROP COLUMN approved_at,
    DROP COLUMN first_review_at,
    DROP COLUMN first_commit_at,
    DROP COLUMN work_item_keys,
    DROP COLUMN merge_commit_sha,
    DROP COLUMN html_url,
    DROP COLUMN body;
