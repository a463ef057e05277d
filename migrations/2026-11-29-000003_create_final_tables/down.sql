DROP TABLE pull_requests;
DROP TABLE work_items;
