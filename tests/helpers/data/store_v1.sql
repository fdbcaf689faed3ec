-- A results store written by schema version 1 (harness/store.py before migrations), dumped by sqlite3.iterdump.
BEGIN TRANSACTION;
CREATE TABLE harness_meta (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(256) NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "harness_meta" VALUES('schema_version','1');
CREATE TABLE metrics (
	id INTEGER NOT NULL, 
	run_id VARCHAR(128) NOT NULL, 
	task VARCHAR(64) NOT NULL, 
	breakdown VARCHAR(64) NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	value FLOAT NOT NULL, 
	stderr FLOAT, 
	ci_low FLOAT, 
	ci_high FLOAT, 
	n INTEGER NOT NULL, 
	is_headline BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "metrics" VALUES(1,'20261126-130800-demo-5f8316','gqa','','accuracy',0.0,0.0,0.0,0.0,12,1);
INSERT INTO "metrics" VALUES(2,'20261126-130800-demo-5f8316','gqa','','binary',0.0,0.0,0.0,0.0,9,0);
INSERT INTO "metrics" VALUES(3,'20261126-130800-demo-5f8316','gqa','','open',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(4,'20261126-130800-demo-5f8316','gqa','','distribution',2.22222222222222196008e-02,NULL,NULL,NULL,6,0);
INSERT INTO "metrics" VALUES(5,'20261126-130800-demo-5f8316','gqa','structural','choose',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(6,'20261126-130800-demo-5f8316','gqa','structural','compare',0.0,NULL,NULL,NULL,1,0);
INSERT INTO "metrics" VALUES(7,'20261126-130800-demo-5f8316','gqa','structural','logical',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(8,'20261126-130800-demo-5f8316','gqa','structural','query',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(9,'20261126-130800-demo-5f8316','gqa','structural','verify',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(10,'20261126-130800-demo-5f8316','gqa','semantic','attr',0.0,0.0,0.0,0.0,10,0);
INSERT INTO "metrics" VALUES(11,'20261126-130800-demo-5f8316','gqa','semantic','obj',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(12,'20261126-130800-demo-5f8316','gqa','steps','2',0.0,0.0,0.0,0.0,9,0);
INSERT INTO "metrics" VALUES(13,'20261126-130800-demo-5f8316','gqa','steps','3',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(14,'20261126-130800-demo-5f8316','gqa','words','4',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(15,'20261126-130800-demo-5f8316','gqa','words','5',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(16,'20261126-130800-demo-5f8316','gqa','words','6',0.0,0.0,0.0,0.0,3,0);
INSERT INTO "metrics" VALUES(17,'20261126-130800-demo-5f8316','gqa','words','7',0.0,NULL,NULL,NULL,1,0);
INSERT INTO "metrics" VALUES(18,'20261126-130800-demo-5f8316','gqa','words','8',0.0,NULL,NULL,NULL,1,0);
INSERT INTO "metrics" VALUES(19,'20261126-130800-demo-5f8316','gqa','words','9',0.0,NULL,NULL,NULL,1,0);
INSERT INTO "metrics" VALUES(20,'20261126-130800-demo-5f8316','gqa','words','10',0.0,NULL,NULL,NULL,1,0);
INSERT INTO "metrics" VALUES(21,'20261126-130800-demo-5f8316','mme','','perception',0.0,0.0,0.0,0.0,6,1);
INSERT INTO "metrics" VALUES(22,'20261126-130800-demo-5f8316','mme','','cognition',0.0,NULL,NULL,NULL,0,1);
INSERT INTO "metrics" VALUES(23,'20261126-130800-demo-5f8316','mme','','total',0.0,0.0,0.0,0.0,6,0);
INSERT INTO "metrics" VALUES(24,'20261126-130800-demo-5f8316','mme','subtask','existence',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(25,'20261126-130800-demo-5f8316','mme','subtask','count',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(26,'20261126-130800-demo-5f8316','mme','subtask','position',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(27,'20261126-130800-demo-5f8316','mme','acc','existence',0.0,0.0,0.0,0.0,4,0);
INSERT INTO "metrics" VALUES(28,'20261126-130800-demo-5f8316','mme','acc','count',0.0,0.0,0.0,0.0,4,0);
INSERT INTO "metrics" VALUES(29,'20261126-130800-demo-5f8316','mme','acc','position',0.0,0.0,0.0,0.0,4,0);
INSERT INTO "metrics" VALUES(30,'20261126-130800-demo-5f8316','mme','acc_plus','existence',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(31,'20261126-130800-demo-5f8316','mme','acc_plus','count',0.0,0.0,0.0,0.0,2,0);
INSERT INTO "metrics" VALUES(32,'20261126-130800-demo-5f8316','mme','acc_plus','position',0.0,0.0,0.0,0.0,2,0);
CREATE TABLE runs (
	id VARCHAR(128) NOT NULL, 
	created DATETIME NOT NULL, 
	finished DATETIME, 
	status VARCHAR(16) NOT NULL, 
	command VARCHAR(16) NOT NULL, 
	model_name VARCHAR(256) NOT NULL, 
	model_spec TEXT NOT NULL, 
	model_fingerprint VARCHAR(128) NOT NULL, 
	is_demo_model BOOLEAN NOT NULL, 
	is_demo_data BOOLEAN NOT NULL, 
	llm VARCHAR(64) NOT NULL, 
	vision_tower VARCHAR(64) NOT NULL, 
	n_parameters INTEGER, 
	protocol VARCHAR(64) NOT NULL, 
	protocol_version VARCHAR(32) NOT NULL, 
	data_root TEXT NOT NULL, 
	git_commit VARCHAR(64), 
	git_dirty BOOLEAN, 
	run_dir TEXT NOT NULL, 
	results_json TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES('20261126-130800-demo-5f8316','2026-11-26 13:08:01.000000','2026-11-26 13:08:01.000000','complete','run','demo','tinyllava:demo','2075e53507e7445a23b9790d7f3b9d35c37dc9e3f344a5c14f272f767ff9efbb',1,1,'llama','siglip_vision_model',261824,'llava15','1','/tmp/hc/demo-data-v1-seed0','828719e631cdd8e8b7a22ca002c75e12a0115f7c',1,'/tmp/v1demo/20261126-130800-demo-5f8316','{"schema_version":1,"run_id":"20261126-130800-demo-5f8316","status":"complete","created":"2026-11-26T13:08:01+00:00","finished":"2026-11-26T13:08:01+00:00","spec":{"command":"run","tasks":["gqa","mme"],"model":"tinyllava:demo","model_args":{},"batch_size":16,"limit":12,"data_root":"/tmp/hc/demo-data-v1-seed0","output_dir":"/tmp/v1demo","protocol":"llava15","device":"cpu","seed":0,"num_workers":0,"answers":null,"no_judge":false,"argv":["run","--tasks","gqa,mme","--limit","12","--output-dir","/tmp/v1demo","--no-progress"]},"protocol":{"name":"llava15","version":"1","description":"LLaVA-1.5 / TinyLLaVA paper setup: LLaVA eval.zip question files, greedy, official scorers"},"model":{"spec":"tinyllava:demo","name":"demo","path":"/tmp/hc/demo-model-v1","is_demo":true,"fingerprint":"2075e53507e7445a23b9790d7f3b9d35c37dc9e3f344a5c14f272f767ff9efbb","dtype":"float32","device":"cpu","n_parameters":261824,"llm":"llama","vision_tower":"siglip_vision_model","template":"v1","details":{"image_aspect_ratio":"pad","attn_implementation":"sdpa","image_tokens":16,"adapter_version":"tinyllava-1","format":"HF Llava"}},"judge":null,"data":{"root":"/tmp/hc/demo-data-v1-seed0","is_demo":true,"fingerprints":{"gqa":"fe79b181e9b72e1f8aa09407c83a1738c23119370f7aeeb848ac6301fca055bd","mme":"b662e7e185c49268d0c27472a030b3c580a17025fe1a7b1fba44d45eed50f57c"}},"git":{"commit":"828719e631cdd8e8b7a22ca002c75e12a0115f7c","branch":"main","dirty":true},"environment":{"python":"3.11.7","platform":"Linux-6.18.44-fc-v669-x86_64-with-glibc2.36","packages":{"tinyllava-harness":"0.1.0","torch":"2.13.0+cpu","transformers":"5.24.0","tokenizers":"0.23.3","accelerate":"1.15.0","safetensors":"0.8.0","numpy":"2.4.6","pillow":"13.0.0","pydantic":"2.14.4","SQLAlchemy":"2.1.9","deepspeed":"0.19.8","peft":"0.21.2","openai":"3.57.0"},"hardware":{"machine":"x86_64","processor":"x86_64","cpu_count":2,"memory_gib":23.5,"torch_threads":2}},"tasks":{"gqa":{"task":"gqa","version":"1","protocol_settings":{"max_new_tokens":128,"prompt":"llava","scorer":"official"},"data_fingerprint":"fe79b181e9b72e1f8aa09407c83a1738c23119370f7aeeb848ac6301fca055bd","n_samples":12,"n_errors":0,"n_parse_failures":0,"n_missing":0,"headline":["accuracy"],"metrics":{"accuracy":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":12,"higher_is_better":true,"description":"exact match after rstrip(''.'') and lower-case, percent"},"binary":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":9,"higher_is_better":true,"description":"non-query questions"},"open":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":"query questions"},"distribution":{"value":0.02222222222222222,"stderr":null,"ci_low":null,"ci_high":null,"n":6,"higher_is_better":false,"description":"chi-square of predicted vs gold answers per global group, /100"}},"breakdowns":{"structural":{"choose":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""},"compare":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":1,"higher_is_better":true,"description":""},"logical":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":""},"query":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""},"verify":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""}},"semantic":{"attr":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":10,"higher_is_better":true,"description":""},"obj":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":""}},"steps":{"2":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":9,"higher_is_better":true,"description":""},"3":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""}},"words":{"4":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":""},"5":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""},"6":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":3,"higher_is_better":true,"description":""},"7":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":1,"higher_is_better":true,"description":""},"8":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":1,"higher_is_better":true,"description":""},"9":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":1,"higher_is_better":true,"description":""},"10":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":1,"higher_is_better":true,"description":""}}},"notes":[],"timing":{"seconds":0.026522173999182996,"generate_seconds":0.025288209999416722,"n_requests":12,"n_generated":12,"n_cached":0,"samples_per_second":474.52943487406907,"output_tokens":24},"judge_usage":null,"samples_file":"samples/gqa.jsonl"},"mme":{"task":"mme","version":"1","protocol_settings":{"max_new_tokens":128,"prompt":"llava","scorer":"official"},"data_fingerprint":"b662e7e185c49268d0c27472a030b3c580a17025fe1a7b1fba44d45eed50f57c","n_samples":12,"n_errors":0,"n_parse_failures":12,"n_missing":0,"headline":["perception","cognition"],"metrics":{"perception":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":6,"higher_is_better":true,"description":"sum of 3 subtask scores"},"cognition":{"value":0.0,"stderr":null,"ci_low":null,"ci_high":null,"n":0,"higher_is_better":true,"description":"sum of 0 subtask scores"},"total":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":6,"higher_is_better":true,"description":"sum of 3 subtask scores"}},"breakdowns":{"subtask":{"existence":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"100 * (acc + acc+)"},"count":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"100 * (acc + acc+)"},"position":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"100 * (acc + acc+)"}},"acc":{"existence":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":4,"higher_is_better":true,"description":"percent of questions"},"count":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":4,"higher_is_better":true,"description":"percent of questions"},"position":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":4,"higher_is_better":true,"description":"percent of questions"}},"acc_plus":{"existence":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"percent of images"},"count":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"percent of images"},"position":{"value":0.0,"stderr":0.0,"ci_low":0.0,"ci_high":0.0,"n":2,"higher_is_better":true,"description":"percent of images"}}},"notes":["cognition: no subtask present; reported as 0"],"timing":{"seconds":0.02011998899979517,"generate_seconds":0.0190465249997942,"n_requests":12,"n_generated":12,"n_cached":0,"samples_per_second":630.0361877103388,"output_tokens":24},"judge_usage":null,"samples_file":"samples/mme.jsonl"}},"errors":[]}');
CREATE TABLE task_results (
	id INTEGER NOT NULL, 
	run_id VARCHAR(128) NOT NULL, 
	task VARCHAR(64) NOT NULL, 
	task_version VARCHAR(32) NOT NULL, 
	n_samples INTEGER NOT NULL, 
	n_errors INTEGER NOT NULL, 
	n_parse_failures INTEGER NOT NULL, 
	n_missing INTEGER NOT NULL, 
	headline_metric VARCHAR(64) NOT NULL, 
	headline_value FLOAT, 
	seconds FLOAT NOT NULL, 
	samples_per_second FLOAT, 
	samples_path TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "task_results" VALUES(1,'20261126-130800-demo-5f8316','gqa','1',12,0,0,0,'accuracy',0.0,2.652217399918299634e-02,4.74529434874069067952e+02,'samples/gqa.jsonl');
INSERT INTO "task_results" VALUES(2,'20261126-130800-demo-5f8316','mme','1',12,0,12,0,'perception',0.0,2.01199889997951686382e-02,6.30036187710338822396e+02,'samples/mme.jsonl');
CREATE INDEX ix_task_results_run_id ON task_results (run_id);
CREATE INDEX ix_metrics_run_id ON metrics (run_id);
COMMIT;
