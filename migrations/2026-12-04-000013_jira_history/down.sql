DELETE FROM loaded_minutes WHERE final_table IN ('work_item_changes', 'work_item_statuses');
DROP TABLE work_item_status_categories;
DROP TABLE work_item_statuses;
DROP TABLE work_item_histories;
DROP TABLE work_item_changes;
DROP INDEX idx_work_items_tenant_key;
DROP INDEX idx_work_items_status_id;
ALTER TABLE work_items
    DROP COLUMN cycle_time_s,
    DROP COLUMN lead_time_s,
    DROP COLUMN changelog_complete,
    DROP COLUMN first_in_progress_at,
    DROP COLUMN changelog_total,
    DROP COLUMN status_id;
