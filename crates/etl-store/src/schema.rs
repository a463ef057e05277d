// @generated automatically by Diesel CLI.

diesel::table! {
    etl_job_queue (id) {
        id -> Int4,
        tenant_id -> Int4,
        #[max_length = 50]
        job_type -> Varchar,
        #[max_length = 50]
        entity_type -> Varchar,
        payload -> Jsonb,
        priority -> Nullable<Int4>,
        #[max_length = 20]
        status -> Nullable<Varchar>,
        scheduled_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        error_details -> Nullable<Jsonb>,
        retry_count -> Nullable<Int4>,
        max_retries -> Nullable<Int4>,
        created_at -> Timestamp,
        queued_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
        worker -> Nullable<Text>,
        result -> Nullable<Jsonb>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, route, key) {
        tenant_id -> Int4,
        #[max_length = 100]
        route -> Varchar,
        #[max_length = 255]
        key -> Varchar,
        status_code -> Nullable<Int2>,
        response -> Nullable<Jsonb>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    integrations (id) {
        id -> Int4,
        tenant_id -> Int4,
        #[max_length = 50]
        provider -> Varchar,
        name -> Text,
        active -> Bool,
        settings -> Jsonb,
        created_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_counts (tenant_id, job_type, status, shard) {
        tenant_id -> Int4,
        #[max_length = 50]
        job_type -> Varchar,
        #[max_length = 20]
        status -> Varchar,
        shard -> Int4,
        jobs -> Int8,
    }
}

diesel::table! {
    loaded_minutes (final_table, tenant_id, minute, shard) {
        #[max_length = 20]
        final_table -> Varchar,
        tenant_id -> Int4,
        minute -> Timestamp,
        shard -> Int4,
        rows -> Int8,
    }
}

diesel::table! {
    raw_extraction_data (id) {
        id -> Int4,
        tenant_id -> Int4,
        integration_id -> Int4,
        #[max_length = 50]
        entity_type -> Varchar,
        #[max_length = 255]
        external_id -> Nullable<Varchar>,
        raw_data -> Jsonb,
        extraction_metadata -> Nullable<Jsonb>,
        #[max_length = 20]
        processing_status -> Nullable<Varchar>,
        error_details -> Nullable<Jsonb>,
        created_at -> Nullable<Timestamp>,
        processed_at -> Nullable<Timestamp>,
        ingest_changes -> Jsonb,
    }
}

diesel::table! {
    raw_record_counts (tenant_id, entity_type, processing_status, error_code, shard) {
        tenant_id -> Int4,
        #[max_length = 50]
        entity_type -> Varchar,
        #[max_length = 20]
        processing_status -> Varchar,
        #[max_length = 100]
        error_code -> Varchar,
        shard -> Int4,
        records -> Int8,
    }
}

diesel::table! {
    tenants (id) {
        id -> Int4,
        name -> Text,
        active -> Bool,
        created_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(etl_job_queue -> tenants (tenant_id));
diesel::joinable!(idempotency_keys -> tenants (tenant_id));
diesel::joinable!(integrations -> tenants (tenant_id));
diesel::joinable!(raw_extraction_data -> integrations (integration_id));
diesel::joinable!(raw_extraction_data -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    etl_job_queue,
    idempotency_keys,
    integrations,
    job_counts,
    loaded_minutes,
    raw_extraction_data,
    raw_record_counts,
    tenants,
);
