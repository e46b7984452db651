// Drives Debian's chromium through the hosted connect page as an end user would (playwright-core,
// pinned by package-lock.json): the OAuth path (fill the configuration, leave for the provider,
// allow, land on the return URL) and the API-key form path. Prints one JSON object with what the
// browser ended on; connect-check.sh asserts on it and on the API.
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
const result = { consoleErrors: [], blocked: [], failedResponses: [] };
try {
  // A phone-sized window: the page must be usable there.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && result.consoleErrors.push(m.text()));
  page.on("requestfailed", (r) => result.blocked.push(r.url()));
  context.on("response", (r) => r.status() >= 400 && result.failedResponses.push(`${r.status()} ${r.url()}`));

  // The OAuth path.
  await page.goto(env("CONNECT_OAUTH_URL"));
  result.title = await page.title();
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  // The browser checks the pattern first: a malformed base id never leaves the page.
  await page.getByRole("textbox", { name: "Base ID" }).fill("not-a-base");
  await page.getByRole("button", { name: "Connect Airtable" }).click();
  result.invalidBlocked = page.url() === env("CONNECT_OAUTH_URL");
  await page.getByRole("textbox", { name: "Base ID" }).fill(env("BASE_ID"));
  await page.getByRole("textbox", { name: "Table" }).fill("Contacts");
  await page.getByRole("button", { name: "Connect Airtable" }).click();
  await page.waitForURL(/\/oauth2\/v1\/authorize/);
  result.providerPage = await page.title();
  await page.click("#allow");
  await page.waitForURL(/\/app\/done/);
  result.oauth = {
    url: page.url(),
    status: await page.textContent("#status"),
    connection: await page.textContent("#connection"),
  };

  // The API-key path, in a fresh page.
  const keys = await context.newPage();
  await keys.goto(env("CONNECT_KEY_URL"));
  await keys.getByLabel("Secret key", { exact: true }).fill("sk_test_wrong000");
  await keys.getByRole("button", { name: "Connect Stripe" }).click();
  await keys.waitForLoadState();
  result.refusedShown = (await keys.content()).includes("did not accept");
  await keys.getByLabel("Secret key", { exact: true }).fill(env("STRIPE_KEY"));
  await keys.getByRole("button", { name: "Connect Stripe" }).click();
  await keys.waitForURL(/\/app\/done/);
  result.key = {
    url: keys.url(),
    status: await keys.textContent("#status"),
    connection: await keys.textContent("#connection"),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
