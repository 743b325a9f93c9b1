export function createDataSource() { throw new Error('todo'); }
