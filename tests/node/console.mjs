// Drives the web console in a real headless Chromium (Debian's, over the
// DevTools protocol with playwright-core), for tests/integration/console.rs.
//
// Environment:
//   CONSOLE_URL      the proxy, http://127.0.0.1:PORT
//   CONSOLE_SHOTS    the directory screenshots go to
//   CONSOLE_MODE     "full": status, a server killed and back, the playground;
//                    "key": the key prompt, then the status
//   CONSOLE_FLAG     (full) a file whose existence keeps the "flaky" server from starting
//   CONSOLE_PIDFILE  (full) where the "flaky" server writes its pid
//   CONSOLE_KEY      (key) the client key to type in
//   CONSOLE_SECRET   (key) the upstream key, which the page must never hold
//
// Prints one JSON object on success and exits 0; any failed step throws,
// and the message goes to stderr with exit code 1.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const env = process.env;
const url = env.CONSOLE_URL;
const shots = env.CONSOLE_SHOTS;
fs.mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = { screenshots: [], consoleErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (msg) => {
    if (msg.type() === "error") result.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (e) => result.consoleErrors.push("page error: " + e.message));
  page.setDefaultTimeout(15000);

  // A browser at / is sent to the console.
  await page.goto(url + "/");
  result.landedOn = new URL(page.url()).pathname;
  if (result.landedOn !== "/ui") throw new Error("/ redirected to " + page.url());

  if (env.CONSOLE_MODE === "key") await keyFlow(page);
  else await fullFlow(page);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

async function shot(page, name, fullPage) {
  const file = path.join(shots, name + ".png");
  await page.screenshot({ path: file, fullPage: !!fullPage });
  result.screenshots.push(file);
}

async function serverState(page, name) {
  return page.locator(`[data-server="${name}"]`).getAttribute("data-state");
}

async function waitState(page, name, want, within) {
  await page.waitForFunction(
    ([n, w]) => {
      const s = document.querySelector(`[data-server="${n}"]`);
      return s && (w === "down" ? s.dataset.state !== "connected" : s.dataset.state === w);
    },
    [name, want],
    { timeout: within },
  );
}

async function fullFlow(page) {
  // Status: both servers, their transports and tools with schemas.
  await waitState(page, "flaky", "connected", 15000);
  await waitState(page, "steady", "connected", 15000);
  result.servers = await page.locator("[data-server]").evaluateAll((nodes) =>
    nodes.map((n) => ({
      name: n.dataset.server,
      state: n.dataset.state,
      tools: [...n.querySelectorAll("[data-tool]")].map((t) => t.dataset.tool),
      text: n.textContent,
    })));
  result.upstream = await page.locator("[data-upstream]").getAttribute("data-upstream");
  // A tool's schema, opened by keyboard: focus its summary and press Enter.
  await page.locator('[data-server="steady"] [data-tool="add"] summary').focus();
  await page.keyboard.press("Enter");
  result.schemaShown = await page.locator('[data-server="steady"] [data-tool="add"] .schema').innerText();
  result.unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((i) => !i.labels || i.labels.length === 0)
      .map((i) => i.id || i.name || i.outerHTML));
  await shot(page, "status-1280");

  // Kill the flaky server, keeping it from coming back; the page shows it down.
  fs.writeFileSync(env.CONSOLE_FLAG, "down");
  const pid = Number(fs.readFileSync(env.CONSOLE_PIDFILE, "utf8").trim());
  process.kill(pid, "SIGKILL");
  const killedAt = Date.now();
  await waitState(page, "flaky", "down", 8000);
  result.downAfterMs = Date.now() - killedAt;
  result.downText = await page.locator('[data-server="flaky"]').innerText();
  await shot(page, "server-down-1280");
  // Let it start again: the page shows it back, restarted once.
  fs.rmSync(env.CONSOLE_FLAG);
  await waitState(page, "flaky", "connected", 15000);
  result.restarts = await page.locator('[data-server="flaky"] .restarts').innerText();
  // The status was drawn again meanwhile; the keyboard focus stayed on the tool it was on.
  result.focusedAfter = await page.evaluate(() => document.activeElement && document.activeElement.id);

  // Playground: leave "big" off, ask by keyboard (Ctrl+Enter), watch the round.
  await page.locator('#tool-choices input[data-key="steady__big"]').uncheck();
  const models = await page.locator("#model option").allInnerTexts();
  result.models = models;
  await page.locator("#message").fill("What is 2 + 3?");
  await page.locator("#message").press("Control+Enter");
  const call = page.locator('.call[data-tool="add"]');
  await call.waitFor();
  await page.locator('.call[data-tool="add"][data-state="done"]').waitFor();
  result.callOpen = await call.evaluate((d) => d.open);
  await page.locator('.msg.assistant[data-done="yes"]').waitFor();
  result.answer = await page.locator(".msg.assistant .answer").innerText();
  // The round comes before the answer in the page.
  result.roundBeforeAnswer = await page.evaluate(() => {
    const c = document.querySelector(".call");
    const a = document.querySelector(".msg.assistant .answer");
    return !!(c.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING);
  });
  await call.locator("summary").click();
  result.callText = await call.innerText();
  await shot(page, "playground-1280");
  await shot(page, "console-1280-full", true);

  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  result.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await shot(page, "console-390", true);
}

async function keyFlow(page) {
  const form = page.locator("#key-form");
  await form.waitFor();
  result.keyAsked = await form.isVisible();
  await page.getByLabel("Client key").fill("wrong-key-00000");
  await page.getByLabel("Client key").press("Enter");
  await page.locator("#key-error").filter({ hasText: "refused" }).waitFor();
  await page.getByLabel("Client key").fill(env.CONSOLE_KEY);
  await page.getByRole("button", { name: "Use key" }).click();
  await page.locator("#console").waitFor();
  await page.locator("[data-server]").first().waitFor();
  result.servers = await page.locator("[data-server]").evaluateAll((nodes) => nodes.map((n) => n.dataset.server));
  const html = await page.content();
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  result.secretShown = html.includes(env.CONSOLE_SECRET) || storage.includes(env.CONSOLE_SECRET);
  result.keyStored = storage.includes(env.CONSOLE_KEY);
  await shot(page, "key-1280");
}
