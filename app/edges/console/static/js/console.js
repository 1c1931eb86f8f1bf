// The console's pages: each fills its template from the /v1 API, as any client would.
// The template names its page (body[data-page]); this starts it and marks the body ready.

import { ApiError } from "./api.js";
import { BODY, fill, h, problem } from "./page.js";
import { pages as experiments } from "./experiments.js";
import { pages as editor } from "./editor.js";
import { pages as network } from "./network.js";
import { pages as orders } from "./orders.js";
import { pages as overview } from "./overview.js";
import { pages as rulesets } from "./rulesets.js";
import { pages as simulate } from "./simulate.js";

const PAGES = { ...overview, ...rulesets, ...editor, ...simulate, ...experiments, ...orders, ...network };

const start = PAGES[BODY.dataset.page];
if (start) {
  start()
    .then(() => {
      BODY.dataset.ready = "true";
    })
    .catch((error) => {
      BODY.dataset.ready = "error";
      if (error instanceof ApiError) problem(error);
      else fill("#notice", h("div", { class: "notice bad", role: "alert" }, `The page failed: ${error.message}`));
    });
}
