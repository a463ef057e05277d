// The interactive documentation of this server's own OpenAPI document.
// Everything comes from this origin: no validator badge (it would ask
// another host), no external spec.
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/etl/openapi.json",
    dom_id: "#docs",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
