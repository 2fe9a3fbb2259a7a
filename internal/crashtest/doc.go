// Package crashtest holds the recovery test: it kills a real job process
// with SIGKILL at random moments, restarts it from its checkpoint, and
// compares every output with an uninterrupted run.
package crashtest
