// Package crashtest kills real job processes with SIGKILL at random
// moments and restarts them ([Loop]), for the recovery tests of the engine
// and of the exactly-once sinks; [Build] compiles the job a test kills.
//
// Its own test is the engine's recovery test: it kills a checkpointed job
// with every kind of window and state, restarts it from its checkpoint,
// and compares every output with an uninterrupted run.
package crashtest
