// analytics.js (@segment/analytics-next's browser bundle, unchanged) in headless
// Debian Chromium, sending to the gateway from a page of another origin.
//
//   node browser.mjs '{"writeKey": ..., "gateway": "http://localhost:PORT", "userId": ...,
//                      "traits": {...}, "order": {...}, "page": {...}}' PROFILE_DIR
//
// (PROFILE_DIR: a fresh, empty folder for Chromium's profile, the caller's to remove.)
//
// Serves the pages on 127.0.0.1 (the gateway is named `localhost`, so every call is
// cross-origin and CORS is real) and, in the browser:
//   1. /          loads analytics.js with cdnURL = the gateway (so it fetches the
//                 gateway's /v1/projects/<writeKey>/settings) and makes identify,
//                 track and page, each awaited until delivered;
//   2. /leave     loads it with the batching strategy (nothing sent before the page
//                 goes), tracks "Left Page", then navigates to /bye: the SDK sends
//                 that batch as the page unloads (fetch keepalive, text/plain);
// then prints one JSON line with the message ids and what the network saw, and keeps
// the browser open until stdin closes (so the unload request can finish while the
// test reads the store). Driven by tests/sdk/test_browser.py.
import { createReadStream } from 'node:fs'
import { createServer } from 'node:http'
import { chromium } from 'playwright-core'

const config = JSON.parse(process.argv[2])
const profile = process.argv[3]
const bundles = new URL('node_modules/@segment/analytics-next/dist/umd/', import.meta.url)

// The page's script: config comes in window.sdkTest, the outcome goes to window.sdkResult.
const load = `
  const { AnalyticsBrowser } = window.AnalyticsNext
  const cfg = window.sdkTest
  const load = (options) =>
    AnalyticsBrowser.load({ writeKey: cfg.writeKey, cdnURL: cfg.gateway }, options)
  const outcome = (ctx) => ({
    messageId: ctx.event.messageId,
    failed: ctx.failedDelivery()?.reason?.message ?? null,
  })
  const report = (result) => { window.sdkResult = result }
  const fail = (error) => report({ error: String(error && error.stack || error) })
`
const pages = {
  '/': `
    const [analytics] = await load({})
    const sent = []
    sent.push(outcome(await analytics.identify(cfg.userId, cfg.traits)))
    sent.push(outcome(await analytics.track('Order Completed', cfg.order)))
    sent.push(outcome(await analytics.page(cfg.page.category, cfg.page.name, cfg.page.properties)))
    report({ sent, anonymousId: analytics.user().anonymousId() })
  `,
  '/leave': `
    const batching = { strategy: 'batching', config: { size: 100, timeout: 600000 } }
    const [analytics] = await load({ integrations: { 'Segment.io': { deliveryStrategy: batching } } })
    report({ sent: [outcome(await analytics.track('Left Page', { after: 'unload' }))] })
  `,
  '/bye': null,
}

function html(script) {
  const body = script
    ? `<script src="/analytics-next/bundles/index.js"></script>
       <script type="module">${load}\ntry {${script}} catch (error) { fail(error) }</script>`
    : '<p>bye</p>'
  // Where the bundle loads its lazy chunks from (the snippet's analytics._cdn).
  return `<!doctype html><html><head><title>SDK test</title>
    <script>window.analytics = { _cdn: location.origin }</script></head>
    <body>${body}</body></html>`
}

const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://page').pathname
  if (path in pages) {
    res.writeHead(200, { 'Content-Type': 'text/html' }).end(html(pages[path]))
  } else if (/^\/analytics-next\/bundles\/[\w.-]+\.js$/.test(path)) {
    const file = new URL(path.split('/').pop(), bundles)
    res.writeHead(200, { 'Content-Type': 'text/javascript' })
    createReadStream(file).on('error', () => res.end()).pipe(res)
  } else if (path === '/favicon.ico') {
    res.writeHead(204).end()
  } else {
    res.writeHead(404).end()
  }
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const origin = `http://127.0.0.1:${server.address().port}`

// Playwright adds --headless and --user-data-dir (the fresh profile); the rest
// keep Chromium from calling out of this machine.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})
const network = []
const problems = []
const answered = new Set()
browser.on('response', (r) => {
  answered.add(r.request())
  network.push(`${r.request().method()} ${r.url()} ${r.status()}`)
})
// A request answered before its page went is not lost (the SDK reads only the
// status, so leaving the page aborts reading the rest of the answer).
browser.on('requestfailed', (r) => {
  if (!answered.has(r)) problems.push(`${r.method()} ${r.url()} failed: ${r.failure()?.errorText}`)
})
const tab = browser.pages()[0] ?? (await browser.newPage())
tab.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
tab.on('pageerror', (e) => problems.push(`page error: ${e}`))
await tab.addInitScript((cfg) => { window.sdkTest = cfg }, config)
// The pipeline discards events of crawlers, and "HeadlessChrome" is one: the browser
// says it is the Chrome it is instead.
const cdp = await browser.newCDPSession(tab)
const { userAgent } = await cdp.send('Browser.getVersion')
const agent = userAgent.replace('HeadlessChrome/', 'Chrome/')
await cdp.send('Emulation.setUserAgentOverride', { userAgent: agent })

async function visit(path) {
  await tab.goto(origin + path)
  await tab.waitForFunction(() => window.sdkResult, null, { timeout: 20000 })
  return tab.evaluate(() => window.sdkResult)
}

let exitCode = 0
try {
  const first = await visit('/')
  const leave = await visit('/leave')
  // Leaving sends "Left Page" (Playwright does not see a request of a page that is gone:
  // the test finds it in the store).
  await tab.goto(origin + '/bye')
  console.log(JSON.stringify({ origin, first, leave, network, problems }))
} catch (error) {
  console.error(String(error.stack || error))
  console.log(JSON.stringify({ origin, error: String(error), network, problems }))
  exitCode = 1
}
// Stay up (the unload request may still be on its way) until the test is done.
for await (const _ of process.stdin);
await browser.close()
server.close()
process.exit(exitCode)
