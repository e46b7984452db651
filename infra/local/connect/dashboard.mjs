// Drives Debian's chromium through the tenant dashboard as its engineer would (playwright-core, pinned
// by package-lock.json beside it): open the single-use link, follow the navigation through every
// view on a phone-sized screen, open the sync run's operation, then try the link again and the
// dashboard without its cookie. Prints one JSON object with what the browser saw (texts and
// numbers as shown, never a token); dashboard-check.sh compares it with what the API reports.
// Writes the session cookie's value to SECRETS_FILE, for the scan of the functions' logs.
import { appendFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const link = env("DASHBOARD_URL");
const operationId = env("OPERATION_ID");
const shots = env("SCREENSHOT_DIR");
const secrets = [env("STRIPE_KEY"), env("TENANT_KEY")];

const views = [
  ["overview", "Overview"],
  ["runs", "Runs"],
  ["failures", "Failures"],
  ["usage", "Usage"],
  ["insights", "Insights"],
];

// Everything a page shows that the check compares: a table's rows as the texts of their cells,
// keyed by header; a missing table is `null`.
const readTable = (page, id) =>
  page.evaluate((id) => {
    const table = document.getElementById(id);
    if (!table) return null;
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    return [...table.querySelectorAll("tbody tr")].map((tr) => {
      const row = {};
      [...tr.children].forEach((cell, i) => (row[heads[i] ?? `#${i}`] = cell.textContent.trim()));
      row._links = [...tr.querySelectorAll("a[href]")].map((a) => a.getAttribute("href"));
      return row;
    });
  }, id);
// Runs `act` (a click) and waits for the page it loads, whose URL matches `pattern`.
const navigate = async (page, act, pattern) => {
  const loaded = page.waitForResponse(
    (r) => r.request().isNavigationRequest() && r.frame() === page.mainFrame() && pattern.test(r.url()),
  );
  await act();
  const response = await loaded;
  await page.waitForLoadState();
  return response;
};
const text = (page, selector) =>
  page.evaluate((s) => document.querySelector(s)?.textContent.trim() ?? null, selector);

// What every view is checked for besides its numbers.
const survey = async (page, response) => {
  const html = await page.content();
  return {
    status: response?.status() ?? null,
    url: page.url(),
    title: await page.title(),
    h1: await text(page, "h1"),
    h1Elements: await page.evaluate(() => document.querySelectorAll("h1 *").length),
    current: await page.evaluate(
      () => document.querySelector('nav[aria-label="Dashboard views"] a[aria-current="page"]')?.textContent.trim() ?? null,
    ),
    // A phone must not scroll the page sideways (tables scroll inside their wrapper).
    overflowsSideways: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth),
    scripts: await page.evaluate(() => document.scripts.length),
    secretShown: secrets.some((s) => html.includes(s)),
    tokenShown: /\bds[lc]_[A-Za-z0-9_-]{8,}/.test(html),
  };
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
const result = { consoleErrors: [], requests: [], views: {} };
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  // Errors until the deliberate refusals below (a 4xx page logs one).
  let watching = true;
  page.on("console", (m) => watching && m.type() === "error" && result.consoleErrors.push(m.text()));
  context.on("request", (r) => result.requests.push(r.url().replace(/ds[lc]_[A-Za-z0-9_-]+/g, "<token>")));

  // The link trades itself for a cookie and lands on the dashboard.
  const opened = await page.goto(link);
  const hops = [];
  for (let r = opened?.request().redirectedFrom(); r; r = r.redirectedFrom()) {
    hops.unshift((await r.response())?.status() ?? null);
  }
  const headers = (await opened?.allHeaders()) ?? {};
  result.open = {
    redirects: hops,
    status: opened?.status() ?? null,
    path: new URL(page.url()).pathname,
    tokenInUrl: /ds[lc]_/.test(page.url()),
    csp: headers["content-security-policy"] ?? null,
    cacheControl: headers["cache-control"] ?? null,
    referrerPolicy: headers["referrer-policy"] ?? null,
  };
  const cookies = await context.cookies();
  result.cookies = cookies.map((c) => ({
    name: c.name,
    path: c.path,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite,
    session: c.value.startsWith("dsc_"),
  }));
  for (const c of cookies) if (c.value.startsWith("dsc_")) appendFileSync(env("SECRETS_FILE"), `${c.value}\n`);
  result.landing = await survey(page, opened);

  // Every view, through the navigation's links.
  const nav = page.getByRole("navigation", { name: "Dashboard views" });
  for (const [view, label] of views) {
    const response = await navigate(
      page,
      () => nav.getByRole("link", { name: label, exact: true }).click(),
      new RegExp(`[?&]view=${view}(&|$)`),
    );
    const seen = await survey(page, response);
    seen.query = new URL(page.url()).search;
    await page.screenshot({ path: `${shots}/dashboard-${view}.png`, fullPage: true });
    if (view === "overview") {
      seen.integrations = await readTable(page, "integrations");
      seen.connections = await readTable(page, "connections");
      seen.latest = await readTable(page, "latest");
    } else if (view === "runs") {
      seen.runs = await readTable(page, "runs");
    } else if (view === "failures") {
      seen.failures = await readTable(page, "failures");
      seen.main = await text(page, "main");
    } else if (view === "usage") {
      seen.totals = {};
      for (const id of ["records", "provider-requests", "api-calls", "action-runs", "proxy-calls", "webhook-deliveries", "webhook-failures", "compute-time"]) {
        seen.totals[id] = await text(page, `#total-${id}`);
      }
      seen.tables = {};
      for (const id of ["records", "provider-requests", "api-calls", "webhooks"]) {
        seen.tables[id] = await readTable(page, `table-${id}`);
      }
      seen.charts = await page.evaluate(() =>
        [...document.querySelectorAll('svg[role="img"]')].map((svg) => ({
          id: svg.id,
          labelled: (svg.getAttribute("aria-labelledby") ?? "").split(" ").every((id) => document.getElementById(id)),
          bars: [...svg.querySelectorAll("rect")].filter((r) => Number(r.getAttribute("height")) > 0).length,
        })),
      );
    } else if (view === "insights") {
      for (const id of ["slowest-streams", "deferred-providers", "failing-syncs"]) {
        seen[id] = await readTable(page, id);
      }
      seen.recommendations = await page.evaluate(() =>
        [...document.querySelectorAll("#recommendations li")].map((li) => li.textContent.trim()),
      );
    }
    result.views[view] = seen;
  }

  // The sync run's operation, from its row in Runs.
  await navigate(page, () => nav.getByRole("link", { name: "Runs", exact: true }).click(), /[?&]view=runs/);
  const response = await navigate(
    page,
    () => page.locator(`#runs a[href="?operation=${operationId}"]`).click(),
    new RegExp(`[?&]operation=${operationId}(&|$)`),
  );
  const operation = await survey(page, response);
  operation.query = new URL(page.url()).search;
  operation.fields = await text(page, "#operation-fields");
  operation.entries = await readTable(page, "entries");
  operation.back = await page.evaluate(() => [...document.querySelectorAll("main a[href^='?view=']")].map((a) => a.getAttribute("href")));
  await page.screenshot({ path: `${shots}/dashboard-operation.png`, fullPage: true });
  result.operation = operation;

  watching = false;
  // The link again, from a browser that never had the cookie (someone who found it in a history
  // or a log), and from the browser that used it.
  const stranger = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const other = await stranger.newPage();
  const replay = await other.goto(link);
  result.replay = { ...(await survey(other, replay)), showsOperation: (await other.content()).includes(operationId) };
  await other.screenshot({ path: `${shots}/dashboard-replay.png`, fullPage: true });
  const again = await page.goto(link);
  result.replayWithCookie = { status: again?.status() ?? null, path: new URL(page.url()).pathname };

  // The dashboard without the cookie.
  const origin = new URL(link).origin;
  for (const path of ["/dashboard", "/dashboard?view=runs", `/dashboard?operation=${operationId}`]) {
    const bare = await other.goto(origin + path);
    const shown = await other.evaluate(() => document.body?.innerText ?? "");
    (result.withoutCookie ??= []).push({
      path,
      status: bare?.status() ?? null,
      showsOperation: (await other.content()).includes(operationId),
      showsTenant: shown.includes(result.landing.h1 ?? "\u0000"),
      tables: await other.evaluate(() => document.querySelectorAll("table").length),
    });
  }
  await stranger.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
