// /docs: Swagger UI over this service's own OpenAPI document (docs/openapi.json, no
// token needed). Requests tried from the page go to this origin, whatever the document's
// servers say, and one sent without a token opens the Authorize dialog to ask for it.
// Swagger UI keeps the token in memory only (persistAuthorization stays off).

"use strict";

(function start() {
  const base = new URL("./", location.href);
  const origin = base.href.replace(/\/$/, "");

  function askForToken() {
    const button = document.querySelector(".auth-wrapper .authorize");
    if (button && !document.querySelector(".dialog-ux")) button.click();
  }

  fetch(new URL("docs/openapi.json", base), { cache: "no-store", credentials: "omit" })
    .then((response) => {
      if (!response.ok) throw new Error(`the document answered ${response.status}`);
      return response.json();
    })
    .then((spec) => {
      spec.servers = [{ url: origin, description: "this service" }];
      window.ui = window.SwaggerUIBundle({
        spec,
        dom_id: "#swagger-ui",
        deepLinking: true,
        persistAuthorization: false,
        // Swagger UI would otherwise show a badge fetched from its makers' validator.
        validatorUrl: null,
        displayRequestDuration: true,
        presets: [window.SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        requestInterceptor(request) {
          const headers = request.headers || {};
          const path = new URL(request.url, base).pathname;
          if (path.startsWith(new URL("api/", base).pathname) && !headers.Authorization) askForToken();
          return request;
        },
      });
    })
    .catch((error) => {
      const main = document.getElementById("swagger-ui");
      const note = document.createElement("p");
      note.className = "docs-loading";
      note.textContent = `The API document could not be loaded (${error.message}); it is also at docs/openapi.json.`;
      main.replaceChildren(note);
    });
})();
