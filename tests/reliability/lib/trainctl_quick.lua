-- Loaded with `trainctl -l trainctl_quick`: short request timeouts and
-- job.settle, for runs under random faults. A training start whose answer
-- is lost is looked up until its own timeout and job.settle have passed
-- (300 s and 10 s by default) before it is sent again; with these, a few
-- seconds.
require("trainctl.http").retry_defaults.timeout = 3
require("trainctl.job").settle = 1
