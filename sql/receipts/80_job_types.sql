-- The receipt pipeline's queues and job types. They live in the migration, not in a seed:
-- review_receipt enqueues match_transaction, and a worker started after `db push` (which runs
-- no seed) must find the queues its handlers name. register_job_type and create_queue are
-- upserts, so re-applying this file is harmless.

select queue.create_queue(
    queue_name => 'receipts',
    max_attempts => 5,
    backoff_base => '5 seconds',
    backoff_max => '30 minutes',
    lease_seconds => 300
);

-- tesseract is CPU-bound: two pages at a time across all workers
select queue.create_queue(
    queue_name => 'ocr',
    max_attempts => 3,
    backoff_base => '10 seconds',
    backoff_max => '10 minutes',
    lease_seconds => 300,
    concurrency => 2
);

-- freee allows 300 receipt uploads a minute; 5 starts a second stays under it
select queue.create_queue(
    queue_name => 'freee',
    max_attempts => 10,
    backoff_base => '30 seconds',
    backoff_max => '1 hour',
    lease_seconds => 120,
    rate_limit => 5,
    rate_interval => '1 second'
);

select queue.register_job_type(
    job_type => 'process_email_receipt', queue_name => 'receipts', priority => 40, max_attempts => 5,
    timeout_seconds => 120, chains_to => '{process_ocr}',
    description => 'Store a mail message and its receipt files; enqueue process_ocr per new receipt.'
);
select queue.register_job_type(
    job_type => 'process_ocr', queue_name => 'ocr', priority => 50, max_attempts => 3,
    timeout_seconds => 300, chains_to => '{match_transaction}',
    description => 'Read a receipt''s text (PDF text layer or tesseract) and fields; enqueue match_transaction.'
);
select queue.register_job_type(
    job_type => 'match_transaction', queue_name => 'receipts', priority => 50, max_attempts => 5,
    timeout_seconds => 60, chains_to => '{organize_file}',
    description => 'Score a receipt against bank/card transactions; enqueue organize_file.'
);
select queue.register_job_type(
    job_type => 'organize_file', queue_name => 'receipts', priority => 60, max_attempts => 8,
    timeout_seconds => 120, services => '{storage}', chains_to => '{sync_freee}',
    description => 'File the receipt as YYYY/MM/vendor/... through the storage adapter; enqueue sync_freee.'
);
select queue.register_job_type(
    job_type => 'sync_freee', queue_name => 'freee', priority => 70, max_attempts => 10,
    timeout_seconds => 120, services => '{freee}',
    description => 'Queue the receipt''s freee upload and expense deal in the outbox; send them when freee is configured.'
);
select queue.register_job_type(
    job_type => 'generate_report', queue_name => 'receipts', priority => 80, max_attempts => 3,
    timeout_seconds => 300, services => '{storage}',
    description => 'Render a month''s receipt report (CSV, HTML, PDF) through the storage adapter.'
);
