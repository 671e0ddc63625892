// Sends Segment-spec calls through @segment/analytics-node, unchanged.
//
// Reads {writeKey, host, flushAt, calls: [{type, ...params}]} as JSON on stdin (the
// params are the SDK's own: userId, anonymousId, traits, event, properties, ...),
// makes every call, flushes, and exits 1 listing every call the SDK could not
// deliver (driven by tests/sdk/test_node_sdk.py).
import { Analytics } from '@segment/analytics-node'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { writeKey, host, flushAt, calls } = JSON.parse(Buffer.concat(chunks).toString())

// Few retries: a refusal fails the test in seconds.
const analytics = new Analytics({ writeKey, host, flushAt, flushInterval: 500, maxRetries: 2 })
const failures = []
analytics.on('error', (error) => failures.push(`${error.code}: ${error.reason}`))

const delivered = calls.map(
  ({ type, ...params }) =>
    new Promise((resolve) =>
      analytics[type](params, (error) => {
        if (error) failures.push(`${type} ${params.messageId}: ${error}`)
        resolve()
      })
    )
)
await analytics.closeAndFlush({ timeout: 30000 })
await Promise.all(delivered)
if (failures.length) {
  console.error(`${failures.length} calls not delivered:\n${failures.join('\n')}`)
  process.exit(1)
}
console.log(`${calls.length} calls delivered`)
