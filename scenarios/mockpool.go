package scenarios

import (
	"database/sql/driver"
	"fmt"
	"io/fs"
)

// MockConnector returns a connector on a fresh sqlmock that expects, in
// order, the statements of operation op's golden trace in golden (the file
// "<op>.trace", as RecordGolden writes it) and answers its queries with the
// rows recorded there; met reports whether every expectation was met
// (sqlmock's ExpectationsWereMet), and closeMock releases the mock. It is
// for a harness that runs an Operation on sqlmock outside the matrix (the
// concurrency probes' pool of one): wrap the connector with a
// faults.Injector or a leakcheck.Tracker as the matrix does, and open the
// pool on it.
func MockConnector(golden fs.FS, op string) (c driver.Connector, met func() error, closeMock func() error, err error) {
	g, err := loadGolden(golden, op)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("scenarios: mock connector for %s: %w", op, err)
	}
	m, err := newMockDB(op)
	if err != nil {
		return nil, nil, nil, err
	}
	setExpectations(m.mock, expectsOnly(g))
	return m.conn, m.mock.ExpectationsWereMet, m.Close, nil
}
