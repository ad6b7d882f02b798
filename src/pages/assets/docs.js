// Renders this server's OpenAPI document. Nothing is loaded from elsewhere: the validator
// badge (which sends the document to validator.swagger.io) is off, and `?url=` in the page's
// address is ignored, so the page cannot be pointed at another document.
'use strict';

window.addEventListener('DOMContentLoaded', () => {
  window.ui = SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    validatorUrl: null,
    queryConfigEnabled: false,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
