export function subscribeWidget() { throw new Error('todo'); }
