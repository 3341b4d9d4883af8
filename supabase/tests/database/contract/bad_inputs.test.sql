-- Every bad input gets Kyu's own error: the SQLSTATE, a message naming the field and the value
-- (jobs[i]: for bulk calls), and nothing written. Each case runs as the role that would send it
-- (service_role, queue_worker, a signed-in user, a user without a session) in a plpgsql loop that
-- catches its error; "nothing written" is a fingerprint of every table the API writes, taken
-- before and after each case, outside the case's own (rolled back) subtransaction, so a case that
-- is accepted instead of refused shows up as a write.
begin;
\ir ../../helpers/ops_setup.psql

-- a job held by worker w-held, of a type that may chain t_ops_job, for the worker calls
select queue.register_job_type(job_type => 't_ops_parent', queue_name => 't_ops', chains_to => array['t_ops_job']);
select queue.enqueue_job('t_ops_parent', '{}') as held_id \gset
create temp table held as
select
    c.id,
    c.lease_token
from queue.claim_jobs('w-held', 1, array['t_ops']) as c;
grant select on held to public;
create function pg_temp.held_id() returns bigint language sql as $$ select h.id from held as h $$;
create function pg_temp.held_token() returns uuid language sql as $$ select h.lease_token from held as h $$;

-- pg_temp.fingerprint(): everything the API can write, as one hash
create function pg_temp.fingerprint() returns text
language sql as $$
    select md5(concat_ws(
        '|',
        (select string_agg(j::text, ',' order by j.id) from queue.jobs as j),
        (select string_agg(h::text, ',' order by h.id) from queue.job_history as h),
        (select string_agg(w::text, ',' order by w.worker_id) from queue.worker_sessions as w),
        (select string_agg(q::text, ',' order by q.queue_name) from queue.queues as q),
        (select string_agg(t::text, ',' order by t.job_type) from queue.job_types as t),
        (select string_agg(s::text, ',') from queue.settings as s),
        (select string_agg(r::text, ',' order by r.name) from queue.recurring_jobs as r),
        (select string_agg(b::text, ',' order by b.service) from queue.circuit_breakers as b)
    ))
$$;

-- the cases: who sends the call, the call, the SQLSTATE and a pattern of the message; one line
-- each, as a table reads (the linter would put every value on its own line)
-- noqa: disable=all
create temp table cases (n serial primary key, who text not null, label text not null, call text not null, sqlstate text not null, pattern text not null);
insert into cases (who, label, call, sqlstate, pattern) values
-- enqueue_job, as service_role
('service_role', 'enqueue: null job_type', $$select queue.enqueue_job(null)$$, '22023', '^job_type is required$'),
('service_role', 'enqueue: unknown job_type', $$select queue.enqueue_job('nope')$$, '22023', '^unknown job type: nope$'),
('service_role', 'enqueue: 3,000-character job_type', $$select queue.enqueue_job(repeat('j', 3000))$$, '22023', '^unknown job type: j{100}\.\.\. \(3000 characters\)$'),
('service_role', 'enqueue: empty job_type', $$select queue.enqueue_job('')$$, '22023', '^unknown job type: $'),
('service_role', 'enqueue: unknown queue', $$select queue.enqueue_job('t_ops_job', queue_name => 'nope')$$, '22023', '^unknown queue: nope$'),
('service_role', 'enqueue: 500-character queue', $$select queue.enqueue_job('t_ops_job', queue_name => repeat('q', 500))$$, '22023', '^unknown queue: q{100}\.\.\. \(500 characters\)$'),
('service_role', 'enqueue: priority 0', $$select queue.enqueue_job('t_ops_job', priority => 0)$$, '22023', '^priority must be between 1 and 100, got 0$'),
('service_role', 'enqueue: priority 101', $$select queue.enqueue_job('t_ops_job', priority => 101)$$, '22023', '^priority must be between 1 and 100, got 101$'),
('service_role', 'enqueue: priority -5', $$select queue.enqueue_job('t_ops_job', priority => -5)$$, '22023', '^priority must be between 1 and 100, got -5$'),
('service_role', 'enqueue: max_attempts 0', $$select queue.enqueue_job('t_ops_job', max_attempts => 0)$$, '22023', '^max_attempts must be at least 1, got 0$'),
('service_role', 'enqueue: max_attempts 101', $$select queue.enqueue_job('t_ops_job', max_attempts => 101)$$, '22023', '^max_attempts must be at most 100, got 101$'),
('service_role', 'enqueue: max_attempts -1', $$select queue.enqueue_job('t_ops_job', max_attempts => -1)$$, '22023', '^max_attempts must be at least 1, got -1$'),
('service_role', 'enqueue: run_at infinity', $$select queue.enqueue_job('t_ops_job', run_at => 'infinity')$$, '22023', '^run_at must be a finite time, got infinity$'),
('service_role', 'enqueue: run_at -infinity', $$select queue.enqueue_job('t_ops_job', run_at => '-infinity')$$, '22023', '^run_at must be a finite time, got -infinity$'),
('service_role', 'enqueue: run_at two years ahead', $$select queue.enqueue_job('t_ops_job', run_at => now() + interval '2 years')$$, '22023', '^run_at must be at most a year from now, got '),
('service_role', 'enqueue: 3,000-character unique_key', $$select queue.enqueue_job('t_ops_job', unique_key => repeat('k', 3000))$$, '22023', '^unique_key is 3000 characters, over the limit of 300$'),
('service_role', 'enqueue: 301-character unique_key', $$select queue.enqueue_job('t_ops_job', unique_key => repeat('k', 301))$$, '22023', '^unique_key is 301 characters, over the limit of 300$'),
('service_role', 'enqueue: payload an array', $$select queue.enqueue_job('t_ops_job', '[]')$$, '22023', '^payload must be a JSON object, got array$'),
('service_role', 'enqueue: payload a string', $$select queue.enqueue_job('t_ops_job', '"x"')$$, '22023', '^payload must be a JSON object, got string$'),
('service_role', 'enqueue: payload JSON null', $$select queue.enqueue_job('t_ops_job', 'null')$$, '22023', '^payload must be a JSON object, got null$'),
('service_role', 'enqueue: payload SQL null', $$select queue.enqueue_job('t_ops_job', null)$$, '22023', '^payload must be a JSON object, got null$'),
('service_role', 'enqueue: 2 MB payload', $$select queue.enqueue_job('t_ops_job', jsonb_build_object('x', repeat('x', 2000000)))$$, '22023', '^payload is 2000009 bytes, over the cap of 1048576 bytes'),
('service_role', 'enqueue: negative backoff_base', $$select queue.enqueue_job('t_ops_job', backoff_base => '-1 hour')$$, '22023', '^backoff_base must be an interval from 0 to 1 hour, got -01:00:00$'),
('service_role', 'enqueue: backoff_base over an hour', $$select queue.enqueue_job('t_ops_job', backoff_base => '2 hours')$$, '22023', '^backoff_base must be an interval from 0 to 1 hour, got 02:00:00$'),
('service_role', 'enqueue: negative backoff_max', $$select queue.enqueue_job('t_ops_job', backoff_max => '-1 hour')$$, '22023', '^backoff_max must be an interval over 0 and at most 7 days, got -01:00:00$'),
('service_role', 'enqueue: zero backoff_max', $$select queue.enqueue_job('t_ops_job', backoff_max => '0')$$, '22023', '^backoff_max must be an interval over 0 and at most 7 days, got 00:00:00$'),
('service_role', 'enqueue: backoff_max over 7 days', $$select queue.enqueue_job('t_ops_job', backoff_max => '30 days')$$, '22023', '^backoff_max must be an interval over 0 and at most 7 days, got 30 days$'),
('service_role', 'enqueue: backoff_max below backoff_base', $$select queue.enqueue_job('t_ops_job', backoff_base => '10 seconds', backoff_max => '1 second')$$, '22023', '^backoff_max \(00:00:01\) must not be less than backoff_base \(00:00:10\)$'),
-- enqueue_jobs, as service_role: the position of the bad job
('service_role', 'bulk: jobs an object', $$select queue.enqueue_jobs('{"job_type": "t_ops_job"}')$$, '22023', '^jobs must be a JSON array of job objects, got object$'),
('service_role', 'bulk: jobs null', $$select queue.enqueue_jobs(null)$$, '22023', '^jobs must be a JSON array of job objects, got null$'),
('service_role', 'bulk: jobs a string', $$select queue.enqueue_jobs('"x"')$$, '22023', '^jobs must be a JSON array of job objects, got string$'),
('service_role', 'bulk: a number for a job', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, 1]')$$, '22023', '^jobs\[1\]: each job must be a JSON object, got number$'),
('service_role', 'bulk: unknown key', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "colour": "red"}]')$$, '22023', '^jobs\[1\]: unknown key colour '),
('service_role', 'bulk: missing job_type', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"payload": {}}]')$$, '22023', '^jobs\[1\]: job_type is required$'),
('service_role', 'bulk: owner_id not a uuid', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "owner_id": "alice"}]')$$, '22023', '^jobs\[1\]: owner_id must be a uuid, got alice$'),
('service_role', 'bulk: owner_id a number', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "owner_id": 42}]')$$, '22023', '^jobs\[1\]: owner_id must be a uuid, got 42$'),
('service_role', 'bulk: priority 1e10', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": 1e10}]')$$, '22023', '^jobs\[1\]: priority must be between 1 and 100, got 10000000000$'),
('service_role', 'bulk: priority 1.5', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": 1.5}]')$$, '22023', '^jobs\[1\]: priority must be an integer from 1 to 100, got 1\.5$'),
('service_role', 'bulk: priority a word', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": "high"}]')$$, '22023', '^jobs\[1\]: priority must be an integer from 1 to 100, got "high"$'),
('service_role', 'bulk: priority a boolean', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": true}]')$$, '22023', '^jobs\[1\]: priority must be an integer from 1 to 100, got true$'),
('service_role', 'bulk: priority -1e400', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": -1e400}]')$$, '22023', '^jobs\[1\]: priority must be between 1 and 100, got -1'),
('service_role', 'bulk: max_attempts 1e10', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "max_attempts": 1e10}]')$$, '22023', '^jobs\[1\]: max_attempts must be at most 100, got 10000000000$'),
('service_role', 'bulk: max_attempts a string', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "max_attempts": "3"}]')$$, '22023', '^jobs\[1\]: max_attempts must be an integer from 1 to 100, got "3"$'),
('service_role', 'bulk: max_attempts 2.5', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "max_attempts": 2.5}]')$$, '22023', '^jobs\[1\]: max_attempts must be an integer from 1 to 100, got 2\.5$'),
('service_role', 'bulk: run_at not a time', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": "tomorrow-ish"}]')$$, '22023', '^jobs\[1\]: run_at must be a time, got tomorrow-ish$'),
('service_role', 'bulk: run_at infinity', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": "infinity"}]')$$, '22023', '^jobs\[1\]: run_at must be a finite time, got infinity$'),
('service_role', 'bulk: run_at -infinity', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": "-infinity"}]')$$, '22023', '^jobs\[1\]: run_at must be a finite time, got -infinity$'),
('service_role', 'bulk: run_at a number', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": 12345}]')$$, '22023', '^jobs\[1\]: run_at must be a time, got 12345$'),
('service_role', 'bulk: run_at in the year 3000', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": "3000-01-01T00:00:00Z"}]')$$, '22023', '^jobs\[1\]: run_at must be at most a year from now, got 3000-01-01'),
('service_role', 'bulk: run_at 100,000 AD', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "run_at": "100000-01-01"}]')$$, '22023', '^jobs\[1\]: run_at must be (a time|at most a year from now), got '),
('service_role', 'bulk: unknown backoff_strategy', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_strategy": "bogus"}]')$$, '22023', '^jobs\[1\]: backoff_strategy must be fixed, linear or exponential, got bogus$'),
('service_role', 'bulk: backoff_strategy a number', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_strategy": 5}]')$$, '22023', '^jobs\[1\]: backoff_strategy must be fixed, linear or exponential, got 5$'),
('service_role', 'bulk: backoff_base not an interval', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_base": "soon"}]')$$, '22023', '^jobs\[1\]: backoff_base must be an interval from 0 to 1 hour, got soon$'),
('service_role', 'bulk: negative backoff_base', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_base": "-5 seconds"}]')$$, '22023', '^jobs\[1\]: backoff_base must be an interval from 0 to 1 hour, got -5 seconds$'),
('service_role', 'bulk: backoff_max not an interval', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_max": "forever"}]')$$, '22023', '^jobs\[1\]: backoff_max must be an interval over 0 and at most 7 days, got forever$'),
('service_role', 'bulk: negative backoff_max', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_max": "-1 hour"}]')$$, '22023', '^jobs\[1\]: backoff_max must be an interval over 0 and at most 7 days, got -1 hour$'),
('service_role', 'bulk: backoff_max a million years', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "backoff_max": "1000000 years"}]')$$, '22023', '^jobs\[1\]: backoff_max must be an interval over 0 and at most 7 days, got 1000000 years$'),
('service_role', 'bulk: unique_key a number', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "unique_key": 42}]')$$, '22023', '^jobs\[1\]: unique_key must be a string, got 42$'),
('service_role', 'bulk: unique_key an object', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "unique_key": {"a": 1}}]')$$, '22023', '^jobs\[1\]: unique_key must be a string, got \{"a": 1\}$'),
('service_role', 'bulk: 400-character unique_key', format($$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "unique_key": "%s"}]')$$, repeat('k', 400)), '22023', '^jobs\[1\]: unique_key is 400 characters, over the limit of 300$'),
('service_role', 'bulk: payload an array', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "payload": []}]')$$, '22023', '^jobs\[1\]: payload must be a JSON object, got array$'),
('service_role', 'bulk: unknown queue', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "queue_name": "nope"}]')$$, '22023', '^jobs\[1\]: unknown queue: nope$'),
('service_role', 'bulk: unknown job type', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "nope"}]')$$, '22023', '^jobs\[1\]: unknown job type: nope$'),
('service_role', 'bulk: parent_id a word', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "parent_id": "abc"}]')$$, '22023', '^jobs\[1\]: parent_id must be a job id, got abc$'),
('service_role', 'bulk: parent_id negative', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "parent_id": -1}]')$$, '22023', '^jobs\[1\]: parent_id must be a job id, got -1$'),
('service_role', 'bulk: 10,001 jobs', $$select queue.enqueue_jobs((select jsonb_agg(jsonb_build_object('job_type', 't_ops_job')) from generate_series(1, 10001)))$$, '22023', '^jobs has 10001 jobs, over the limit of 10000 per call$'),
('service_role', 'bulk: the third job is named', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}, {"job_type": "t_ops_job"}, {"job_type": "t_ops_job", "priority": 0}]')$$, '22023', '^jobs\[2\]: priority must be between 1 and 100, got 0$'),
('service_role', 'bulk: the first job is named', $$select queue.enqueue_jobs('[{"job_type": "t_ops_job", "run_at": "soon"}, {"job_type": "t_ops_job"}]')$$, '22023', '^jobs\[0\]: run_at must be a time, got soon$'),
-- claim_jobs
('queue_worker', 'claim: null worker_id', $$select queue.claim_jobs(null)$$, '22023', '^worker_id is required$'),
('queue_worker', 'claim: empty worker_id', $$select queue.claim_jobs('')$$, '22023', '^worker_id is required$'),
('queue_worker', 'claim: blank worker_id', $$select queue.claim_jobs('   ')$$, '22023', '^worker_id is required$'),
('queue_worker', 'claim: 300-character worker_id', $$select queue.claim_jobs(repeat('w', 300))$$, '22023', '^worker_id must be at most 200 characters, got w{100}\.\.\. \(300 characters\)$'),
('queue_worker', 'claim: batch_size 0', $$select queue.claim_jobs('w', 0)$$, '22023', '^batch_size must be between 1 and 1000, got 0$'),
('queue_worker', 'claim: batch_size 1001', $$select queue.claim_jobs('w', 1001)$$, '22023', '^batch_size must be between 1 and 1000, got 1001$'),
('queue_worker', 'claim: batch_size null', $$select queue.claim_jobs('w', null)$$, '22023', '^batch_size must be between 1 and 1000, got null$'),
('queue_worker', 'claim: lease_seconds 0', $$select queue.claim_jobs('w', 1, lease_seconds => 0)$$, '22023', '^lease_seconds must be from 1 to 86400 \(a day\), got 0$'),
('queue_worker', 'claim: lease_seconds over a day', $$select queue.claim_jobs('w', 1, lease_seconds => 100000)$$, '22023', '^lease_seconds must be from 1 to 86400 \(a day\), got 100000$'),
-- finishing without the lease token, or with bad values
('queue_worker', 'complete_job without a token', $$select queue.complete_job(pg_temp.held_id(), 'w-held', '{}')$$, '22023', '^lease_token is required: job [0-9]+ was passed without one$'),
('queue_worker', 'complete_jobs without tokens', $$select queue.complete_jobs(array[pg_temp.held_id()], 'w-held')$$, '22023', '^lease_token is required: job [0-9]+ was passed without one$'),
('queue_worker', 'complete_jobs with a null token', $$select queue.complete_jobs(array[pg_temp.held_id(), 5], 'w-held', lease_tokens => array[pg_temp.held_token(), null])$$, '22023', '^lease_token is required: job 5 was passed without one$'),
('queue_worker', 'complete_jobs with too few tokens', $$select queue.complete_jobs(array[pg_temp.held_id(), 5], 'w-held', lease_tokens => array[pg_temp.held_token()])$$, '22023', '^lease_tokens must hold one token per job id \(2 ids, 1 tokens\)$'),
('queue_worker', 'complete_job with a 2 MB result', $$select queue.complete_job(pg_temp.held_id(), 'w-held', jsonb_build_object('x', repeat('x', 2000000)), lease_token => pg_temp.held_token())$$, '22023', '^job_ids\[0\]: result is 2000009 bytes, over the cap of 1048576 bytes'),
('queue_worker', 'fail_job without a token', $$select queue.fail_job(pg_temp.held_id(), 'w-held', 'boom')$$, '22023', '^lease_token is required: job [0-9]+ was failed without one$'),
('queue_worker', 'fail_job retry_at infinity', $$select queue.fail_job(pg_temp.held_id(), 'w-held', 'boom', retry_at => 'infinity', lease_token => pg_temp.held_token())$$, '22023', '^retry_at must be a finite time, got infinity$'),
('queue_worker', 'fail_job retry_at -infinity', $$select queue.fail_job(pg_temp.held_id(), 'w-held', 'boom', retry_at => '-infinity', lease_token => pg_temp.held_token())$$, '22023', '^retry_at must be a finite time, got -infinity$'),
('queue_worker', 'fail_job retry_at two years ahead', $$select queue.fail_job(pg_temp.held_id(), 'w-held', 'boom', retry_at => now() + interval '2 years', lease_token => pg_temp.held_token())$$, '22023', '^retry_at must be at most a year from now, got '),
('queue_worker', 'heartbeat: null worker_id', $$select queue.heartbeat(null)$$, '22023', '^worker_id is required$'),
('queue_worker', 'heartbeat: empty worker_id', $$select queue.heartbeat('')$$, '22023', '^worker_id is required$'),
('queue_worker', 'heartbeat: 300-character worker_id', $$select queue.heartbeat(repeat('w', 300))$$, '22023', '^worker_id must be at most 200 characters'),
('queue_worker', 'heartbeat: 300-character host', $$select queue.heartbeat('w-held', host => repeat('h', 300))$$, '22023', '^host must be at most 255 characters, got h{100}\.\.\. \(300 characters\)$'),
('queue_worker', 'heartbeat: metadata an array', $$select queue.heartbeat('w-held', metadata => '[]')$$, '22023', '^metadata must be a JSON object, got array$'),
('queue_worker', 'heartbeat: 100 kB metadata', $$select queue.heartbeat('w-held', metadata => jsonb_build_object('x', repeat('x', 100000)))$$, '22023', '^metadata is 100009 bytes, over the limit of 65536$'),
('queue_worker', 'heartbeat: job ids without tokens', $$select queue.heartbeat('w-held', array[pg_temp.held_id()])$$, '22023', '^lease_tokens must hold one token per job id \(1 ids, null tokens\)$'),
('queue_worker', 'heartbeat: too many tokens', $$select queue.heartbeat('w-held', array[pg_temp.held_id()], lease_tokens => array[pg_temp.held_token(), pg_temp.held_token()])$$, '22023', '^lease_tokens must hold one token per job id \(1 ids, 2 tokens\)$'),
('queue_worker', 'report_progress without a token', $$select queue.report_progress(pg_temp.held_id(), 'w-held', '{"pct": 5}')$$, '22023', '^lease_token is required: progress for job [0-9]+ was reported without one$'),
('queue_worker', 'report_progress: 100 kB of progress', $$select queue.report_progress(pg_temp.held_id(), 'w-held', jsonb_build_object('x', repeat('x', 100000)), pg_temp.held_token())$$, '22023', '^progress is 100009 bytes, over the limit of 65536$'),
('queue_worker', 'release_jobs without tokens', $$select queue.release_jobs('w-held', array[pg_temp.held_id()])$$, '22023', '^lease_tokens must hold one token per job id \(1 ids, null tokens\)$'),
('queue_worker', 'release_jobs with a null token', $$select queue.release_jobs('w-held', array[pg_temp.held_id()], array[null]::uuid[])$$, '22023', '^lease_tokens must hold one token per job id'),
-- chaining, as queue_worker
('queue_worker', 'chain: no parent', $$select queue.enqueue_child_job(null, null, 't_ops_job')$$, '22023', '^parent_id and lease_token are required \(got parent_id null, lease_token null\)$'),
('queue_worker', 'chain: a token that is not the parent''s', $$select queue.enqueue_child_job(pg_temp.held_id(), gen_random_uuid(), 't_ops_job')$$, '42501', '^job [0-9]+ is not running under this lease_token: only the handler holding a job may chain from it$'),
('queue_worker', 'chain: a type the parent may not chain', $$select queue.enqueue_child_job(pg_temp.held_id(), pg_temp.held_token(), 't_ops_internal')$$, '42501', '^jobs\[0\]: job type t_ops_internal may not be chained from t_ops_parent$'),
('queue_worker', 'chain: an unknown type', $$select queue.enqueue_child_job(pg_temp.held_id(), pg_temp.held_token(), 'nope')$$, '42501', '^jobs\[0\]: job type nope may not be chained from t_ops_parent$'),
('queue_worker', 'chain: a child that names its owner', $$select queue.enqueue_child_jobs(pg_temp.held_id(), pg_temp.held_token(), '[{"job_type": "t_ops_job", "owner_id": "22222222-2222-4222-8222-222222222222"}]')$$, '42501', '^jobs\[0\]: a chained job cannot set owner_id$'),
('queue_worker', 'chain: a child that names its queue', $$select queue.enqueue_child_jobs(pg_temp.held_id(), pg_temp.held_token(), '[{"job_type": "t_ops_job", "queue_name": "t_ops_other"}]')$$, '42501', '^jobs\[0\]: a chained job cannot set queue_name$'),
('queue_worker', 'chain: a child more urgent than its type', $$select queue.enqueue_child_job(pg_temp.held_id(), pg_temp.held_token(), 't_ops_job', priority => 1)$$, '42501', '^jobs\[0\]: priority 1 is more urgent than job type t_ops_job allows chained jobs \(50 to 100\)$'),
('queue_worker', 'chain: jobs not an array', $$select queue.enqueue_child_jobs(pg_temp.held_id(), pg_temp.held_token(), '{}')$$, '22023', '^jobs must be a JSON array of job objects, got object$'),
('queue_worker', 'chain: a child with a bad run_at', $$select queue.enqueue_child_jobs(pg_temp.held_id(), pg_temp.held_token(), '[{"job_type": "t_ops_job", "run_at": "infinity"}]')$$, '22023', '^run_at must be a finite time, got infinity$'),
-- reading and control, as service_role
('service_role', 'get_job(null)', $$select queue.get_job(null)$$, '22023', '^job_id is required$'),
('service_role', 'get_job of no job', $$select queue.get_job(-1)$$, 'P0002', '^job -1 not found'),
('service_role', 'cancel_job(null)', $$select queue.cancel_job(null)$$, '22023', '^job_id is required$'),
('service_role', 'cancel_job of no job', $$select queue.cancel_job(-1)$$, 'P0002', '^job -1 not found$'),
('service_role', 'cancel_job of a running job', $$select queue.cancel_job(pg_temp.held_id())$$, '55000', '^job [0-9]+ is running \(worker w-held\) and cannot be cancelled$'),
('service_role', 'retry_job(null)', $$select queue.retry_job(null)$$, '22023', '^job_id is required$'),
('service_role', 'retry_job of a live job', $$select queue.retry_job(pg_temp.held_id())$$, '55000', '^job [0-9]+ is still live and cannot be retried$'),
('service_role', 'pause_queue of no queue', $$select queue.pause_queue('nope')$$, '22023', '^unknown queue: nope$'),
('service_role', 'pause_queue of a 3,000-character name', $$select queue.pause_queue(repeat('q', 3000))$$, '22023', '^unknown queue: q{100}\.\.\. \(3000 characters\)$'),
('service_role', 'resume_queue(null)', $$select queue.resume_queue(null)$$, '22023', '^unknown queue: null$'),
('service_role', 'list_jobs: lim 0', $$select queue.list_jobs(lim => 0)$$, '22023', '^lim must be between 1 and 10000, got 0$'),
('service_role', 'list_jobs: lim 10001', $$select queue.list_jobs(lim => 10001)$$, '22023', '^lim must be between 1 and 10000, got 10001$'),
('service_role', 'list_jobs: negative offset', $$select queue.list_jobs(off => -1)$$, '22023', '^off must be 0 or more, got -1$'),
('service_role', 'list_jobs: payload_contains an array', $$select queue.list_jobs(payload_contains => '[]')$$, '22023', '^payload_contains must be a JSON object, got array$'),
-- the registry, as service_role
('service_role', 'create_queue: bad name', $$select queue.create_queue('Bad Name')$$, '22023', '^queue_name must be 1-63 characters'),
('service_role', 'create_queue: max_attempts 0', $$select queue.create_queue('t_x', max_attempts => 0)$$, '22023', '^max_attempts must be from 1 to 100, got 0$'),
('service_role', 'create_queue: backoff_base over an hour', $$select queue.create_queue('t_x', backoff_base => '2 hours')$$, '22023', '^backoff_base must be from 0 to 1 hour, got 02:00:00$'),
('service_role', 'create_queue: backoff_max over 7 days', $$select queue.create_queue('t_x', backoff_max => '30 days')$$, '22023', '^backoff_max must be over 0, at most 7 days and not below backoff_base'),
('service_role', 'create_queue: null backoff_strategy', $$select queue.create_queue('t_x', backoff_strategy => null)$$, '22023', '^backoff_strategy must be fixed, linear or exponential, got null$'),
('service_role', 'create_queue: null backoff_base', $$select queue.create_queue('t_x', backoff_base => null)$$, '22023', '^backoff_base must be from 0 to 1 hour, got null$'),
('service_role', 'create_queue: lease_seconds 0', $$select queue.create_queue('t_x', lease_seconds => 0)$$, '22023', '^lease_seconds must be from 1 to 86400 \(a day\), got 0$'),
('service_role', 'create_queue: lease_seconds over a day', $$select queue.create_queue('t_x', lease_seconds => 100000)$$, '22023', '^lease_seconds must be from 1 to 86400 \(a day\), got 100000$'),
('service_role', 'create_queue: negative retention', $$select queue.create_queue('t_x', retention => '-1 day')$$, '22023', '^retention must be positive, got -1 days$'),
('service_role', 'create_queue: concurrency 0', $$select queue.create_queue('t_x', concurrency => 0)$$, '22023', '^concurrency must be at least 1'),
('service_role', 'create_queue: rate_limit without an interval', $$select queue.create_queue('t_x', rate_limit => 5)$$, '22023', '^rate_limit \(>= 1\) and rate_interval \(> 0\) go together'),
('service_role', 'register_job_type: bad name', $$select queue.register_job_type('1bad')$$, '22023', '^job_type must be 1-100 characters'),
('service_role', 'register_job_type: unknown queue', $$select queue.register_job_type('t_x', 'nope')$$, '22023', '^unknown queue: nope$'),
('service_role', 'register_job_type: priority 0', $$select queue.register_job_type('t_x', 't_ops', priority => 0)$$, '22023', '^priority must be between 1 and 100, got 0$'),
('service_role', 'register_job_type: max_attempts 101', $$select queue.register_job_type('t_x', 't_ops', max_attempts => 101)$$, '22023', '^max_attempts must be from 1 to 100, got 101$'),
('service_role', 'register_job_type: timeout 0', $$select queue.register_job_type('t_x', 't_ops', timeout_seconds => 0)$$, '22023', '^timeout_seconds must be at least 1, got 0$'),
('service_role', 'register_job_type: a null in chains_to', $$select queue.register_job_type('t_x', 't_ops', chains_to => array[null]::text[])$$, '22023', '^chains_to must list job types'),
('service_role', 'set_owner_tier: null owner', $$select queue.set_owner_tier(null, 'pro')$$, '22023', '^owner_id is required$'),
('service_role', 'set_owner_tier: unknown tier', $$select queue.set_owner_tier('11111111-1111-4111-8111-111111111111', repeat('t', 500))$$, '22023', '^unknown tier: t{100}\.\.\. \(500 characters\)$'),
('queue_worker', 'report_service: null service', $$select queue.report_service(null, false)$$, '22023', '^service is required$'),
('queue_worker', 'report_service: 5,000-character service', $$select queue.report_service(repeat('s', 5000), false)$$, '22023', '^service must be at most 100 characters, got s{100}\.\.\. \(5000 characters\)$'),
('service_role', 'purge_history: max_rows 0', $$select queue.purge_history(max_rows => 0)$$, '22023', '^max_rows must be at least 1, got 0$'),
-- queue_public, as a signed-in end user
('alice', 'user: a type not for end users', $$select queue_public.enqueue_job('t_ops_internal')$$, '42501', '^job type t_ops_internal is not available to end users$'),
('alice', 'user: null job type', $$select queue_public.enqueue_job(null)$$, '42501', '^job type null is not available to end users$'),
('alice', 'user: 3,000-character job type', $$select queue_public.enqueue_job(repeat('j', 3000))$$, '42501', '^job type j{100}\.\.\. \(3000 characters\) is not available to end users$'),
('alice', 'user: more urgent than the type allows', $$select queue_public.enqueue_job('t_ops_user', priority => 1)$$, '42501', '^priority 1 is more urgent than job type t_ops_user allows end users \(40 to 100\)$'),
('alice', 'user: priority 101', $$select queue_public.enqueue_job('t_ops_user', priority => 101)$$, '22023', '^priority must be between 1 and 100, got 101$'),
('alice', 'user: run_at infinity', $$select queue_public.enqueue_job('t_ops_user', run_at => 'infinity')$$, '22023', '^run_at must be a finite time, got infinity$'),
('alice', 'user: run_at -infinity', $$select queue_public.enqueue_job('t_ops_user', run_at => '-infinity')$$, '22023', '^run_at must be a finite time, got -infinity$'),
('alice', 'user: run_at two years ahead', $$select queue_public.enqueue_job('t_ops_user', run_at => now() + interval '2 years')$$, '22023', '^run_at must be at most a year from now'),
('alice', 'user: 256-character unique_key', $$select queue_public.enqueue_job('t_ops_user', unique_key => repeat('k', 256))$$, '22023', '^unique_key is 256 characters, over the limit of 255$'),
('alice', 'user: 3,000-character unique_key', $$select queue_public.enqueue_job('t_ops_user', unique_key => repeat('k', 3000))$$, '22023', '^unique_key is 3000 characters, over the limit of 255$'),
('alice', 'user: payload an array', $$select queue_public.enqueue_job('t_ops_user', '[]')$$, '22023', '^payload must be a JSON object, got array$'),
('alice', 'user: 2 MB payload', $$select queue_public.enqueue_job('t_ops_user', jsonb_build_object('x', repeat('x', 2000000)))$$, '22023', '^payload is 2000009 bytes, over the cap'),
('nobody', 'user: not signed in', $$select queue_public.enqueue_job('t_ops_user')$$, '42501', '^enqueueing a job needs a signed-in user');
-- noqa: enable=all

create temp table outcomes (n int primary key, sqlstate text, message text, hint text, wrote boolean);

-- pg_temp.run_cases(): each case as its role, its error caught; a write is seen outside the case
create function pg_temp.run_cases() returns void
language plpgsql as $$
declare
    c record;
    v_before text;
    v_state text;
    v_message text;
    v_hint text;
begin
    for c in select * from cases order by n loop
        v_before := pg_temp.fingerprint();
        v_state := null;
        v_message := null;
        v_hint := null;
        begin
            if c.who = 'alice' then
                perform pg_temp.login('alice');
                perform set_config('role', 'authenticated', true);
            elsif c.who = 'nobody' then
                perform set_config('request.jwt.claims', '', true);
                perform set_config('role', 'authenticated', true);
            else
                perform set_config('role', c.who, true);
            end if;
            execute c.call;
            -- accepted: back to the test's role (a refused case's subtransaction undoes this itself)
            perform set_config('role', 'none', true);
            perform set_config('request.jwt.claims', '', true);
        exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
        end;
        insert into outcomes values (c.n, v_state, v_message, v_hint, pg_temp.fingerprint() <> v_before);
    end loop;
end
$$;

select plan((select count(*)::int from cases) + 4);

select ok((select count(*) from cases) >= 100, 'the table holds at least 100 bad inputs');
select pg_temp.fingerprint() as before_all \gset
select pg_temp.run_cases();

select
    is(
        coalesce(o.sqlstate, 'no error') || case
            when o.message ~ c.pattern then ' (message as expected)'
            else ': ' || coalesce(left(o.message, 300), '')
        end || case when o.wrote then ', and it wrote' else '' end,
        c.sqlstate || ' (message as expected)',
        format('%s (%s)', c.label, c.who)
    )
from cases as c
inner join outcomes as o on c.n = o.n
order by c.n;

select is(pg_temp.fingerprint(), :'before_all', 'nothing was written by the whole set');
select
    is(
        (
            select array_agg(o.n order by o.n) from outcomes as o
            where o.message ~* 'invalid input syntax|out of range|violates|index row size|does not exist|cannot subtract|malformed'
        ),
        null,
        'no case answered with a raw PostgreSQL message'
    );
select
    is(
        (
            select array_agg(o.n order by o.n) from outcomes as o
            where length(o.message) > 400
        ),
        null,
        'no error message is longer than 400 characters, whatever the size of the bad value'
    );

select * from finish();
rollback;
